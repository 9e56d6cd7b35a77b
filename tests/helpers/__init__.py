"""What several test modules share: fake encoders and sources, tiny real collections and models,
data-file writers, in-memory pairs, a live server, the CLI in a fresh process, shared fixtures."""
