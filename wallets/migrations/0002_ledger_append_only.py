from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION wallets_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'wallets_wallettransaction is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER wallets_ledger_append_only
    BEFORE UPDATE OR DELETE ON wallets_wallettransaction
    FOR EACH ROW EXECUTE FUNCTION wallets_ledger_append_only();
"""

ALLOW = """
DROP TRIGGER IF EXISTS wallets_ledger_append_only ON wallets_wallettransaction;
DROP FUNCTION IF EXISTS wallets_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("wallets", "0001_initial")]
    operations = [migrations.RunSQL(FORBID, ALLOW)]
