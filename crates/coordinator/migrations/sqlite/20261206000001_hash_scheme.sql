-- Ledger hash scheme per entry: 1 = funnelgate's original canonical JSON (entries written
-- before this migration), 2 = RFC 8785 (JCS). See `funnelgate_coordinator::store::HashScheme`.
ALTER TABLE ledger ADD COLUMN hash_scheme INTEGER NOT NULL DEFAULT 1 CHECK (hash_scheme IN (1, 2));
