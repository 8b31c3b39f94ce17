//! Worker selection, pricing, metering and reservations.
