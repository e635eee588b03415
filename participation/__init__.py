"""Participation (公众参与): data-quality reports about a dataset (纠错 feedback) and requests
for data not opened yet (数据需求 demands), their workflows handled by a `data_admin`, and
the public figures of the cockpit (数据驾驶舱) computed from them and the audit log."""
