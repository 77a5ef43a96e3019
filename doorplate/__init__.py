"""daoban doorplate package."""
