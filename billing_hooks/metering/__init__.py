"""What a call costs and who pays: the biller (authorize, hold, settle once), rate caps, pricing plans, the agency's allowance, each family's call history."""
