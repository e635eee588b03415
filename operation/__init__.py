"""Authorized operation (公共数据授权运营, contract §13): industry zones, operating agencies
and their agreements, application scenarios, registered data products with capped prices,
the usage ledger kept by the database beside the audit log, and monthly statements."""
