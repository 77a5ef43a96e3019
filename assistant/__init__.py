"""daoban assistant package."""
