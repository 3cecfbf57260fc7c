"""The family's account over HTTP: balance, deposits, AutoPay, receipts, closing, and statements (JSON, CSV, PDF)."""
