# The holders of a qualification valid on a day, from a `qledger generate`
# JSON-lines file, one compact JSON object per qualification:
#   {"insurer": …, "symbol": …, "number": …, "branch": …, "birth_date": "YYYY-MM-DD"}
# (symbol and branch "" when the card has none). Run as
#   jq -n -c --arg today YYYY-MM-DD -f holders.jq FILE
# The card fields start from the QualificationAcquired event and follow the
# QualificationChanged events in effect by the day; a qualification acquired
# after the day, lost on or before it, or whose acquisition was retracted is
# left out. The birth date is the acquisition's (no change event carries one).
reduce inputs as $e ({held: {}, retracted: {}};
  if $e.type == "QualificationAcquired" then
    .held[$e.qualification_id] = {
      event: $e.envelope.event_id,
      from: $e.acquired_on,
      lost: null,
      card: {
        insurer: $e.insurer_number,
        symbol: ($e.card_symbol // ""),
        number: $e.card_number,
        branch: ($e.branch // ""),
        birth_date: $e.birth_date
      }
    }
  elif $e.type == "QualificationChanged" and .held[$e.qualification_id] != null
       and $e.effective_on <= $today then
    .held[$e.qualification_id].card |= (
      reduce ("card_symbol", "card_number", "branch") as $f (.;
        if ($e | has($f)) then .[$f | ltrimstr("card_")] = ($e[$f] // "") else . end))
  elif $e.type == "QualificationLost" and .held[$e.qualification_id] != null then
    .held[$e.qualification_id].lost = $e.lost_on
  elif $e.type == "QualificationRetracted" then
    .retracted[$e.retracted_event_id] = true
  else . end)
| .retracted as $gone
| .held[]
| select(($gone[.event] | not) and .from <= $today and (.lost == null or .lost > $today))
| .card
