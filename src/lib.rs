//! mango-store: the storefront cache and sync layer between Mango Biz and online-store themes.
//!
//! A request's way through the crate: `app` (router, middleware) → `tenant` (which store) →
//! the capability module that owns the route (`catalog`, `webhooks`, `booking`, `analytics`,
//! `admin`, `ops`) → `db` (persistence) and `biz` (the upstream client).

pub mod admin;
pub mod analytics;
pub mod app;
pub mod availability;
pub mod biz;
pub mod booking;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connections;
pub mod context;
pub mod cors;
pub mod db;
pub mod domain;
pub mod error;
pub mod extract;
pub mod failpoint;
pub mod fakebiz;
pub mod jobs;
pub mod openapi;
pub mod ops;
pub mod origin;
pub mod ratelimit;
pub mod telemetry;
pub mod tenant;
pub mod web;
pub mod webhooks;
