-- Ownership of an open transaction (hub_common.transitions): whoever calls the operator for it holds a lease.
-- `lease_token` goes up by one each time someone takes the transaction (the ledger making it PROCESSING or taking
-- over an expired lease, hubctl resolving or replaying it); every final write and every renewal names the token
-- its writer holds, so a writer whose lease was taken over (fenced) changes nothing. A lease is live while
-- `lease_expires_at` lies ahead of the database clock; nobody else takes the transaction while it is.
ALTER TABLE transactions ADD COLUMN lease_owner text;
ALTER TABLE transactions ADD COLUMN lease_token bigint NOT NULL DEFAULT 0;
ALTER TABLE transactions ADD COLUMN lease_expires_at timestamptz;
