// purpose-required: deny the configured actions unless `context.purpose` is
// one of the allowed purposes. A warrant custom rule in plain JavaScript,
// implementing the `warrant:rule` world in ../wit/rule.wit.
//
// Config: {"actions": ["run_query"], "allowed_purposes": ["fraud_review"]}
// Reasons: purpose_missing, purpose_not_allowed:<purpose>, invalid_config,
// invalid_context. Other actions abstain.
import { log } from 'warrant:rule/host@0.1.0';

const verdict = (effect, reason = null) => ({ effect, reason });
const strings = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string');
const parse = (json) => { try { return JSON.parse(json); } catch (e) { log(String(e)); return undefined; } };

export function evaluate(configJson, req) {
  const config = parse(configJson);
  if (!config || !strings(config.actions) || !strings(config.allowed_purposes)) {
    log('invalid_config: expected {"actions": [..], "allowed_purposes": [..]}');
    return verdict('deny', 'invalid_config');
  }
  if (!config.actions.includes(req.action.id)) return verdict('abstain');
  const context = parse(req.contextJson);
  if (context === null || typeof context !== 'object' || Array.isArray(context)) {
    return verdict('deny', 'invalid_context');
  }
  const purpose = context.purpose;
  if (typeof purpose !== 'string' || purpose === '') return verdict('deny', 'purpose_missing');
  if (!config.allowed_purposes.includes(purpose)) return verdict('deny', `purpose_not_allowed:${purpose}`);
  return verdict('allow');
}
