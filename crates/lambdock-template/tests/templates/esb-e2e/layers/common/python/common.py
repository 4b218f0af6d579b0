GREETING = "hello from the common layer"
