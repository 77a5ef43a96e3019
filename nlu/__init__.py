"""daoban nlu package."""
