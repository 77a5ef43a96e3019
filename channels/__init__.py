"""daoban channels package."""
