//! Messages the database refuses even so: dead-lettered at once and always recorded.
