//! Media URLs that try to reach our own network.
