"""The analysis service: views built from the event stream, metrics answers and charts."""
