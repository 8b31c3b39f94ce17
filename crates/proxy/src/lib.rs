//! The proxy role: routes client requests to workers, meters and prices them.
