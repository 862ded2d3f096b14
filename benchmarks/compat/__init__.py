"""The porting yardstick: the peers' own test suites run on the originals and on gc3session."""
