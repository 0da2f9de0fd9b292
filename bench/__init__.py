"""`make bench`: load generators and the tables they print (our figure beside its baseline)."""
