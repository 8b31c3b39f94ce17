//! Dashboards for people: what a node has done over the last hour, on one small HTML page its
//! stats port serves at `/dashboard`.
//!
//! Sans-IO like the market: no clock, no sockets, no tasks. The node samples its own figures
//! (the same ones its `/jsonstats` shows) into a [`History`] at a fixed interval and passes the
//! time in; [`Page`] renders the key numbers as plain HTML text and the history as inline SVG
//! charts drawn on the server.
//!
//! # Rules
//!
//! - **Bounded memory.** A [`History`] keeps at most [`History::capacity`] points per series and
//!   at most [`MAX_SERIES`] series; older points fall out as new ones arrive, and points older
//!   than the window are dropped.
//! - **Self-contained.** The page names no outside resource (no script, font, stylesheet or
//!   image URL): nodes run where nothing beyond loopback is reachable. Liveness comes from
//!   `<meta http-equiv="refresh">`; no JavaScript is needed to read any figure.
//! - **Every string is escaped.** Worker names, model names and error messages come from peers;
//!   every text that reaches the page goes through [`escape`].

mod history;
mod page;

pub use history::{History, MAX_SERIES, Point};
pub use page::{Chart, Page, escape};
