"""Marketing Cloud Personalization connector: tap-personalization and target-personalization."""
