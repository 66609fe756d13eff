//! The CPOR claim workflow as a pure state machine.
pub mod access;
pub mod calendar;
pub mod command;
pub mod decide;
pub mod dns;
pub mod error;
pub mod event;
pub mod image;
pub mod limits;
pub mod name;
pub mod state;
pub mod types;
pub mod view;

#[cfg(test)]
mod tests;
