-- Demo database: the schema owner (migrations) and one login role per service and for hubctl.
-- Public demo passwords, matching kustomization.yaml's secrets. Production creates these roles its own way
-- (docs/deploy.md#database).
CREATE ROLE hub_owner LOGIN PASSWORD '4dab3d17ac51e4dd09308d3a';
CREATE ROLE hub_gateway LOGIN PASSWORD '9642ab25e5ded1cc81aeda2f';
CREATE ROLE hub_ledger LOGIN PASSWORD '4dc4517aca1a824d391727a5';
CREATE ROLE hub_dispatcher LOGIN PASSWORD '7c3588ae5bf4bf5b99fa4506';
CREATE ROLE hub_reconciler LOGIN PASSWORD 'ffc56932e79b0726fc559004';
CREATE ROLE hub_hubctl LOGIN PASSWORD '6de17769af5fdf2fb3f0ba82';
CREATE DATABASE integration_hub OWNER hub_owner;
-- Each role's table privileges are granted by hub-migrate (hub_common.db_access, docs/security.md §2.2).
