-- wrk script: POST AuthZEN evaluations over the generated workspace
-- (engine/benches/fixture/generated.rs), the same request sequence as the
-- in-process `throughput` bench: half hit a grant, half do not.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARRANT_KEY") or "")
local n = 0
request = function()
  local i = n % 512
  n = n + 1
  local project = (i % 2 == 0) and (i % 100) or ((i * 13 + 1) % 100)
  local body = string.format(
    '{"subject":{"type":"User","id":"u%d"},"action":{"name":"view_notebook"},"resource":{"type":"Project","id":"p%d"}}',
    (i * 7) % 1000, project)
  return wrk.format(nil, "/access/v1/evaluation", nil, body)
end
