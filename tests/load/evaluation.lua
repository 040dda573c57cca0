-- wrk script: POST AuthZEN evaluations, cycling through members and
-- non-members of projects so allows and denies are both exercised.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARRANT_KEY") or "")
local n = 0
request = function()
  n = n + 1
  local user = n % 1000
  local project = (n * 7) % 100
  local body = string.format(
    '{"subject":{"type":"User","id":"u%d"},"action":{"name":"view_notebook"},"resource":{"type":"Project","id":"p%d"}}',
    user, project)
  return wrk.format(nil, "/access/v1/evaluation", nil, body)
end
