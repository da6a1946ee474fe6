//! `qledger check-id`: is this identifier valid, and if not, why.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::ValueEnum;
use ledger::domain::{
    Branch, CardNumber, CardSymbol, IndividualInsuredNumber, InsurerNumber,
    PublicExpensePayerNumber, RecipientNumber,
};
use ledger::error::{FieldError, RuleViolation};

use super::{emit, status, CheckIdArgs};

/// The kinds of identifier `check-id` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdKind {
    /// 保険者番号 (8 digits, or 6 for 国保).
    Insurer,
    /// 個人単位被保険者番号: `INSURER,SYMBOL,NUMBER,BRANCH`.
    Insured,
    /// 公費負担者番号 (8 digits).
    PublicExpense,
    /// 受給者番号 (7 digits).
    Recipient,
}

pub(super) fn check(args: CheckIdArgs) -> Result<ExitCode> {
    let value = args.value.as_str();
    let verdict: Result<String, String> = match args.kind {
        IdKind::Insurer => InsurerNumber::parse(value)
            .map(describe_insurer)
            .map_err(|e| rule("insurer number", value, &e)),
        IdKind::Insured => insured(value)?
            .map(|n| {
                format!(
                    "valid individual insured number (個人単位被保険者番号): {n}\n{}",
                    describe_insurer(n.insurer().clone())
                )
            })
            .map_err(|e| format!("invalid individual insured number: {}: {}", e.field, e.rule)),
        IdKind::PublicExpense => PublicExpensePayerNumber::parse(value)
            .map(|n| {
                format!(
                    "valid public-expense payer number (公費負担者番号) {n}: 法別番号 {:02}",
                    n.law_code()
                )
            })
            .map_err(|e| rule("public-expense payer number", value, &e)),
        IdKind::Recipient => RecipientNumber::parse(value)
            .map(|n| format!("valid recipient number (受給者番号) {n}"))
            .map_err(|e| rule("recipient number", value, &e)),
    };
    let (Ok(text) | Err(text)) = &verdict;
    emit(text)?;
    Ok(status(verdict.is_ok()))
}

fn rule(what: &str, value: &str, e: &RuleViolation) -> String {
    format!("invalid {what} {value:?}: {}", e.rule())
}

fn describe_insurer(n: InsurerNumber) -> String {
    let kind = n.kind();
    let payer = kind.payer();
    format!(
        "valid insurer number (保険者番号) {n}: {} ({}), prefecture {:02}; claims paid by {} ({})",
        kind.japanese(),
        kind.symbol(),
        n.prefecture(),
        payer.japanese(),
        payer.symbol()
    )
}

/// `INSURER,SYMBOL,NUMBER,BRANCH`; each part checked, then the whole.
fn insured(value: &str) -> Result<Result<IndividualInsuredNumber, FieldError>> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    let [insurer, symbol, number, branch] = parts[..] else {
        bail!("an insured number is INSURER,SYMBOL,NUMBER,BRANCH (symbol and branch may be empty), got {} parts", parts.len());
    };
    let parsed = (|| {
        let insurer = InsurerNumber::parse(insurer).map_err(|e| e.at("insurer_number"))?;
        let symbol = (!symbol.is_empty())
            .then_some(symbol)
            .map(CardSymbol::parse)
            .transpose()
            .map_err(|e| e.at("card_symbol"))?;
        let number = CardNumber::parse(number).map_err(|e| e.at("card_number"))?;
        let branch = (!branch.is_empty())
            .then_some(branch)
            .map(Branch::parse)
            .transpose()
            .map_err(|e| e.at("branch"))?;
        IndividualInsuredNumber::new(insurer, symbol, number, branch)
    })();
    Ok(parsed)
}
