"""One module per use case; each class has one `async execute(command)`."""
