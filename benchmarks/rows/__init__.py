"""One module per benchmark idea; each ``run(plan)`` returns its rows of the table."""
