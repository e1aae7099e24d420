"""Has the official-community Marketo client `marketorestpython` (pinned in
scripts/python-requirements.txt) parse the local Marketo server's replies: token, usage, asset
paging, activity paging by nextPageToken, leads, describe, emails, forms, lead create/delete, and
an error envelope. Usage: check_marketo.py BASE_URL CLIENT_ID CLIENT_SECRET SINCE"""

import sys

from marketorestpython.client import MarketoClient
from marketorestpython.helper.exceptions import MarketoException

base, client_id, client_secret, since = sys.argv[1:5]
mc = MarketoClient("000-AAA-000", client_id, client_secret, max_retry_time=1, requests_timeout=10)
mc.host = base  # the library builds https://{munchkin}.mktorest.com; point it at the local server


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}")
        sys.exit(1)
    print(f"ok: {what}")


usage = mc.execute(method="get_daily_usage")
check(usage[0]["total"] == 1234, "usage.json result[0].total")
check(mc.token.startswith("token-") and mc.expires_in == 3599, "identity token parsed")

campaigns = [c for page in mc.execute(method="get_smart_campaigns") for c in (page if isinstance(page, list) else [page])]
check(len(campaigns) == 250 and campaigns[0]["name"] == "C1", "smart campaigns paged by offset (250)")
check(all("isActive" in c for c in campaigns), "smart campaigns carry isActive")

types = mc.execute(method="get_activity_types")
names = {t["name"]: t["id"] for t in types}
check(names.get("Change Score") == 22 and names.get("New Lead") == 12, "activity types")

acts = mc.execute(method="get_lead_activities", activityTypeIds=["12", "22"], sinceDatetime=since)
check(len(acts) == 7, f"activities followed nextPageToken across pages ({len(acts)})")
check(any(a["attributes"] and a["attributes"][0]["name"] == "Old Value" for a in acts), "activity attributes")

leads = mc.execute(method="get_multiple_leads_by_filter_type", filterType="email",
                   filterValues=["unsub@acme.io"], fields=["id", "email", "unsubscribed"])
check(len(leads) == 1 and leads[0]["unsubscribed"] is True, "leads by email filter")

fields = mc.execute(method="describe")
check(any(f["rest"]["name"] == "leadScore" for f in fields), "lead describe")

email = mc.execute(method="get_email_by_id", id=1)
check(email[0]["status"] == "approved", "email by id")
try:
    mc.execute(method="get_email_by_id", id=999)
    check(False, "a missing email raises")
except Exception as e:
    detail = e.args[0] if e.args else {}
    check(isinstance(detail, dict) and detail.get("code") == "702", f"a missing email asset is error 702 ({e!r})")

form = mc.execute(method="get_form_fields", id=1001)
check({f["id"] for f in form} == {"Email", "utm_source"}, "form fields")

created = mc.execute(method="create_update_leads", leads=[{"email": "canary+1@canary.example"}],
                     action="createOrUpdate", lookupField="email")
check(created[0]["status"] == "created", "lead created")
deleted = mc.execute(method="delete_lead", id=[created[0]["id"]])
check(deleted[0]["status"] == "deleted", "lead deleted")

try:
    mc.execute(method="get_form_fields", id=5)
    check(False, "702 raises")
except Exception as e:  # execute() re-raises MarketoException as Exception({'message','code'})
    detail = e.args[0] if e.args else {}
    check(isinstance(detail, dict) and detail.get("code") == "702", f"error envelope parsed ({detail})")

print("all fidelity checks passed")
