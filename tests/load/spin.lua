-- wrk script: native authorize of run_query on an open connection, which
-- the `spin` rule (an endless loop) is consulted for: every answer is a
-- deny with rule_error:spin, after the rule burns its fuel.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARRANT_KEY") or "")
wrk.body = '{"principal":{"type":"User","id":"eddie"},"action":"run_query",' ..
  '"resource":{"type":"Connection","id":"c_open"},"context":{"now":"2026-06-01T00:00:00Z"}}'
wrk.path = "/v1/authorize"
