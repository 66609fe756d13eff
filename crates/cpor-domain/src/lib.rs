//! The CPOR claim workflow as a pure state machine.
pub mod calendar;
pub mod command;
pub mod error;
pub mod event;
pub mod types;
pub mod decide;
pub mod state;
pub mod view;

#[cfg(test)]
mod tests;
