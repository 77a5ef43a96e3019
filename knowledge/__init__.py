"""daoban knowledge package."""
