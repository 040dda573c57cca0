#!/usr/bin/env python3
"""Prints a Cedar entities JSON array for the load test: USERS users in 10
groups, a project per 10 users, 4 connections, a token per user, schemas."""
import json
import sys

users = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
U = lambda i: {"__entity": {"type": "Analytics::User", "id": f"u{i}"}}
docs = [{"uid": {"type": "Analytics::Group", "id": f"g{g}"}, "attrs": {}, "parents": []} for g in range(10)]
for i in range(users):
    docs.append({"uid": {"type": "Analytics::User", "id": f"u{i}"},
                 "attrs": {"email": f"u{i}@example.com", "workspace_role": "editor", "is_support": False,
                           "warehouse_roles": ["ANALYST", f"R{i % 7}"]},
                 "parents": [{"type": "Analytics::Group", "id": f"g{i % 10}"}]})
for p in range(users // 10):
    b = p * 10
    docs.append({"uid": {"type": "Analytics::Project", "id": f"p{p}"},
                 "attrs": {"owner": U(b), "editors": [U(b + k) for k in range(1, 4)],
                           "viewers": [U(b + k) for k in range(4, 10)],
                           "credential_sharing": "notebook_and_app" if p % 2 == 0 else "disabled",
                           "app_includes_owner_credentials": True, "shared_with_support": False, "uses_oauth": True}})
json.dump(docs, sys.stdout)
