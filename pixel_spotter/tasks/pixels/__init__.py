"""The many-pixels task (data=pixels): a set of bright pixels per image."""
