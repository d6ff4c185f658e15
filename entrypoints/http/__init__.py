"""The Litestar HTTP app: legacy contract controller, envelope, error mapping."""
