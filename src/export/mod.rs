//! Exports of the journal for other tools. Each format reads the store through its read
//! methods, in bounded chunks, and writes as it goes, so an export of a large ledger needs
//! memory for its accounts, never for its journal.

pub mod beancount;
