"""The pages of the web UI, one module per tab or group of tabs; each exports its ``ROUTES``
and its ``TABS``."""
