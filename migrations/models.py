"""Every package's tables, imported in one place for Alembic."""

import audit.models  # noqa: F401
import auth.models  # noqa: F401
import catalog.models  # noqa: F401
import keystore.models  # noqa: F401
import operation.models  # noqa: F401
import participation.models  # noqa: F401
import policies.models  # noqa: F401
import portal.session  # noqa: F401
import services.models  # noqa: F401
