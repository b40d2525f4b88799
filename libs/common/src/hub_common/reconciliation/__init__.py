"""Reconciliation of the Hub's transactions with the operator's records: the matching rules (one SQL
expression, used by the date-range report and by the reconciler's continuous join), the report itself, and the
events of `hub.reconciliation.mismatches`. Shared by the reconciler service and `hubctl reconcile`."""
