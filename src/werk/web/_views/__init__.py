"""The pages of the web UI, one module per tab; each exports its ``ROUTES``."""
