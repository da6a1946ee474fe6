//! OpenAPI schemas of the domain types that serialise as strings (or, for
//! [`CopayRate`], an integer): what their serde form looks like, for the HTTP
//! API's document (`utoipa`). Each pattern describes the normalised form the
//! type serialises to; parsing accepts more (full-width digits, the 8-digit
//! form of a 国保 insurer number, lower-case serials).
//!
//! The closed vocabularies ([`CardKind`] …) get theirs from their symbols,
//! in the macro that makes them ([`card`](super::card)).

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

use super::*;

/// `PartialSchema` and `ToSchema` (named after the type) from a schema.
macro_rules! schema {
    ($($ty:ty => $schema:expr;)+) => {$(
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl utoipa::ToSchema for $ty {}
    )+};
}

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

fn pattern(description: &str, pattern: &str) -> ObjectBuilder {
    string(description).pattern(Some(pattern))
}

fn formatted(description: &str, format: KnownFormat) -> ObjectBuilder {
    string(description).format(Some(SchemaFormat::KnownFormat(format)))
}

fn text(description: &str, max: usize) -> ObjectBuilder {
    string(description)
        .min_length(Some(1))
        .max_length(Some(max))
}

/// The opaque ids: 1 to 64 of `A-Z a-z 0-9 . _ : -`.
const OPAQUE: &str = "^[A-Za-z0-9._:-]{1,64}$";

schema! {
    Day => formatted(
        "A calendar date in Japan (valid time, 有効時間), YYYY-MM-DD",
        KnownFormat::Date,
    );
    RecordTime => formatted(
        "An instant the log recorded (record time, 記録時間), RFC 3339 in UTC",
        KnownFormat::DateTime,
    );
    ServiceMonth => pattern("診療年月, YYYY-MM", "^[0-9]{4}-(0[1-9]|1[0-2])$");
    InsurerNumber => pattern(
        "保険者番号: 8 digits, or 6 for 国保, with its check digit",
        "^[0-9]{6}([0-9]{2})?$",
    );
    CardSymbol => text("記号 of a card: digits, kana, kanji, letters or '-'", 38);
    CardNumber => pattern("番号 of a card: digits or '-'", "^[0-9-]{1,20}$");
    Branch => pattern("枝番: 2 digits", "^[0-9]{2}$");
    CardSerial => pattern(
        "シリアル of a My Number card: upper-case hex digits",
        "^[0-9A-F]{1,40}$",
    );
    LinkNumber => pattern("紐付番号: the person's id in the ledger", OPAQUE);
    QualificationId => pattern("A qualification's id", OPAQUE);
    CertificateId => pattern("A certificate's id", OPAQUE);
    SubsidyId => pattern("A subsidy's id", OPAQUE);
    RequestId => pattern("A card-link request's id", OPAQUE);
    ClaimId => pattern("A claim's id", OPAQUE);
    PublisherId => pattern("A publisher's id (an event's source)", OPAQUE);
    PublicExpensePayerNumber => pattern("公費負担者番号: 8 digits", "^[0-9]{8}$");
    RecipientNumber => pattern("公費受給者番号: 7 digits", "^[0-9]{7}$");
    MunicipalityCode => pattern("地方公共団体コード: 6 digits", "^[0-9]{6}$");
    InstitutionCode => pattern("医療機関コード: 10 digits", "^[0-9]{10}$");
    NameKanji => text("氏名", 100);
    NameKana => text("カナ氏名: katakana and ideographic spaces", 100);
    CopayRate => ObjectBuilder::new()
        .schema_type(Type::Integer)
        .description(Some("負担割合: the percentage the patient pays"))
        .enum_values(Some([10, 20, 30]));
}
