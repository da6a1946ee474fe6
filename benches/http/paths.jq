# Eligibility query paths for the qualifications valid today, from a
# `qledger generate` JSON-lines file. Run as
#   jq -n -r --arg today YYYY-MM-DD -f paths.jq FILE
# Each qualification's insured number is taken from its QualificationAcquired
# event and follows the QualificationChanged events already in effect today;
# qualifications acquired after today, lost on or before today, or whose
# acquisition was retracted are left out, so every path names a person who
# holds a qualification today.
def enc: @uri;
reduce inputs as $e ({q: {}, retracted: {}};
  if $e.type == "QualificationAcquired" then
    .q[$e.qualification_id] = {
      event: $e.envelope.event_id,
      insurer: $e.insurer_number,
      symbol: ($e.card_symbol // ""),
      number: $e.card_number,
      branch: ($e.branch // ""),
      from: $e.acquired_on,
      lost: null
    }
  elif $e.type == "QualificationChanged" and .q[$e.qualification_id] != null
       and $e.effective_on <= $today then
    .q[$e.qualification_id] |= (
      (if $e | has("card_symbol") then .symbol = ($e.card_symbol // "") else . end)
      | (if $e | has("card_number") then .number = $e.card_number else . end)
      | (if $e | has("branch") then .branch = ($e.branch // "") else . end))
  elif $e.type == "QualificationLost" and .q[$e.qualification_id] != null then
    .q[$e.qualification_id].lost = $e.lost_on
  elif $e.type == "QualificationRetracted" then
    .retracted[$e.retracted_event_id] = true
  else . end)
| .retracted as $r
| .q[]
| select(($r[.event] | not) and .from <= $today and (.lost == null or .lost > $today))
| "/v1/eligibility?insurer=\(.insurer | enc)"
  + (if .symbol != "" then "&symbol=\(.symbol | enc)" else "" end)
  + "&number=\(.number | enc)"
  + (if .branch != "" then "&branch=\(.branch | enc)" else "" end)
