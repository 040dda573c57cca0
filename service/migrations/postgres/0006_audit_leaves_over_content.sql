-- Merkle leaves hash each record's whole canonical entry from here on
-- (before, they hashed its MAC alone). The tree is derived from the records,
-- so it is rebuilt by reading them; what cannot be rebuilt is a checkpoint
-- signed over the old leaves. Checkpoints covering at most `tree_size`
-- records were signed over MAC leaves, and verification checks them so.
CREATE TABLE audit_mac_leaves_until (tree_size BIGINT NOT NULL);
INSERT INTO audit_mac_leaves_until (tree_size) SELECT COALESCE(MAX(tree_size), 0) FROM audit_checkpoints;
