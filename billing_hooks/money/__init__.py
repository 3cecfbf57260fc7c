"""The money in a family's AdvanceConnect account: the ledger of immutable entries and its invariants, deposits through the payment processor, AutoPay funding, refunds and receipts."""
