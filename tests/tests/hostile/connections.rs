//! Connections and requests: unauthenticated traffic, slow and greedy clients, odd paths.
