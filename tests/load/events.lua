-- wrk script: POST token events with unique token ids; each answer comes
-- only once its audit record is durable.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARRANT_KEY") or "")
local tag = os.getenv("LOAD_TAG") or "a"
local thread_id = 0
local counter = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
request = function()
  counter = counter + 1
  local body = string.format(
    '{"kind":"token.issued","token_id":"%s-%d-%d","owner":"u%d","connection":"snow","role":"ANALYST","expires_at":"2030-01-01T00:00:00Z"}',
    tag, tid or 0, counter, counter % 1000)
  return wrk.format(nil, "/v1/tokens/events", nil, body)
end
