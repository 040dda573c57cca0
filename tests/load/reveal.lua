-- wrk script: revealing credential resolutions (the vault, docs/vault.md):
-- eddie runs a notebook query in p1 under its owner olivia's grant; Cedar
-- decides, the token is opened, and each answer waits for its durable
-- `token.used` record.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARRANT_KEY") or "")
wrk.body = '{"principal":{"type":"User","id":"eddie"},"project":"p1","connection":"snowflake","surface":"notebook","reveal":true}'
