"""Fidelity check of the local vendor servers used by the CRM checker's tests.

The vendors' official client libraries are the reference (no licensed machine-readable spec
exists for these vendors): `hubspot-api-client` is generated from HubSpot's own OpenAPI specs and
validates required fields and enums when it deserialises a reply; `simple-salesforce` is the
de-facto Salesforce REST client. This script points them at the local servers, calls the
endpoints the probes use (with paging to completion) and the error replies, and exits non-zero
if a client raises or a reply does not parse.

Usage: check_clients.py [--hubspot URL --hubspot-token T] [--salesforce URL --salesforce-session S --salesforce-version 60.0]
"""

import argparse
import json
import sys
import time
import traceback

failures = []


def check(name, fn):
    started = time.monotonic()
    try:
        fn()
        print(f"ok   {name} ({time.monotonic() - started:.1f}s)")
    except Exception:  # noqa: BLE001 - report every failure, then exit non-zero
        failures.append(name)
        print(f"FAIL {name}")
        traceback.print_exc()


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def hubspot_checks(base, token):
    from hubspot import HubSpot
    from hubspot.crm.associations.v4 import (
        BatchInputPublicFetchAssociationsBatchRequest,
        PublicFetchAssociationsBatchRequest,
    )
    from hubspot.crm.contacts import (
        BatchReadInputSimplePublicObjectId,
        Filter,
        FilterGroup,
        PublicObjectSearchRequest,
        SimplePublicObjectId,
    )
    from hubspot.crm.contacts.exceptions import ApiException

    # HubSpot turns the generated models' validation off by default; turn it on so a missing
    # required field or an unknown enum value in a reply fails the check.
    client = HubSpot(access_token=token, host=base, client_side_validation=True)

    def properties():
        for obj in ("contacts", "deals"):
            r = client.crm.properties.core_api.get_all(object_type=obj)
            expect(r.results and all(p.name and p.type and p.field_type for p in r.results), f"{obj} properties")

    def pipelines():
        r = client.crm.pipelines.pipelines_api.get_all(object_type="deals")
        expect(r.results and r.results[0].stages, "deal pipelines with stages")
        expect(r.results[0].stages[0].metadata.get("isClosed") in ("true", "false"), "stage metadata")

    def search_paging():
        req = PublicObjectSearchRequest(
            filter_groups=[FilterGroup(filters=[Filter(property_name="createdate", operator="GTE", value="0")])],
            properties=["email", "hs_analytics_source"],
            sorts=["-createdate"],
            limit=2,
        )
        seen = []
        page = client.crm.contacts.search_api.do_search(public_object_search_request=req)
        total = page.total
        while True:
            seen.extend(r.id for r in page.results)
            if not page.paging or not page.paging.next:
                break
            req.after = page.paging.next.after
            page = client.crm.contacts.search_api.do_search(public_object_search_request=req)
        expect(total >= 3 and len(seen) == total and len(set(seen)) == total, f"search paged {len(seen)} of {total}")
        deals = client.crm.deals.search_api.do_search(
            public_object_search_request={"filterGroups": [{"filters": [{"propertyName": "hs_is_closed_won", "operator": "EQ", "value": "true"}]}], "limit": 1}
        )
        expect(deals.total >= 1, "won deals total")

    def list_paging():
        first = client.crm.contacts.basic_api.get_page(limit=2, properties=["email"])
        expect(first.paging.next.after, "list paging.next.after")
        second = client.crm.contacts.basic_api.get_page(limit=2, after=first.paging.next.after, properties=["email"])
        expect(second.results, "second list page")
        everyone = client.crm.contacts.get_all(properties=["email"])
        expect(len(everyone) >= 3, "get_all pages to completion")

    def batch_reads():
        r = client.crm.contacts.batch_api.read(
            batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
                properties=["hs_analytics_source"], inputs=[SimplePublicObjectId(id="1")]
            )
        )
        expect(r.results and r.results[0].id == "1", "batch read contacts")
        a = client.crm.associations.v4.batch_api.get_page(
            from_object_type="deals",
            to_object_type="contacts",
            batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id="101"), PublicFetchAssociationsBatchRequest(id="102")]
            ),
        )
        expect(a.results and a.results[0].to[0].to_object_id, "associations batch read")
        expect(getattr(a, "num_errors", 0) == 1, "207 multi-status with one error")

    def error_replies():
        api_client = client.crm.contacts.basic_api.api_client
        for name, call, status in (
            ("wrong token", lambda: HubSpot(access_token="wrong", host=base, client_side_validation=True).crm.contacts.basic_api.get_page(limit=1), 401),
            ("missing scope", lambda: client.crm.companies.basic_api.get_page(limit=1), 403),
            ("unknown object", lambda: client.crm.properties.core_api.get_all(object_type="nope"), 404),
            ("rate limited", lambda: client.crm.tickets.basic_api.get_page(limit=1), 429),
        ):
            try:
                call()
            except Exception as e:  # the per-API ApiException classes differ; match on status
                expect(getattr(e, "status", None) == status, f"{name}: status {getattr(e, 'status', None)} != {status}")
                body = json.loads(e.body)
                if status == 429:
                    expect(e.headers.get("Retry-After"), "429 carries Retry-After")
                    continue
                # HubSpot's error schema (`Error`: category, correlationId, message, errors[]…),
                # validated by the generated deserialiser.
                api_client._ApiClient__deserialize(body, "Error")
                if status == 403:
                    expect("crm.objects.companies.read" in e.body, "403 names the scope")
                continue
            raise AssertionError(f"{name}: no error raised")
        _ = ApiException

    check("hubspot properties", properties)
    check("hubspot pipelines", pipelines)
    check("hubspot search paging", search_paging)
    check("hubspot list paging", list_paging)
    check("hubspot batch reads", batch_reads)
    check("hubspot error replies", error_replies)


def salesforce_checks(base, session, version, record_type=None):
    import requests
    from requests.adapters import HTTPAdapter
    from simple_salesforce import Salesforce
    from simple_salesforce.exceptions import (
        SalesforceExpiredSession,
        SalesforceResourceNotFound,
    )

    class PlainHttp(HTTPAdapter):
        """simple-salesforce always builds https:// URLs from the instance; the local server
        speaks plain http on loopback. Only the transport changes: the client builds and parses
        everything itself."""

        def send(self, request, **kwargs):
            request.url = "http://" + request.url[len("https://"):]
            return super().send(request, **kwargs)

    host = base.split("://", 1)[1].rstrip("/")
    http = requests.Session()
    http.mount(f"https://{host}", PlainHttp())

    def client(session_id):
        return Salesforce(instance_url=f"https://{host}", session_id=session_id, version=version, session=http)

    sf = client(session)

    def limits():
        r = sf.limits()
        expect(r["DailyApiRequests"]["Max"] > 0, "DailyApiRequests.Max")

    def describe():
        for obj in ("Lead", "Opportunity"):
            d = getattr(sf, obj).describe()
            expect(d["name"] == obj and d["fields"], f"{obj} describe")
            expect(all("name" in f and "type" in f for f in d["fields"]), f"{obj} fields")

    def query_paging():
        first = sf.query("SELECT Id, Email FROM Lead")
        expect(not first["done"] and first["nextRecordsUrl"], "first page not done")
        everything = sf.query_all("SELECT Id, Email FROM Lead")
        expect(everything["done"] and len(everything["records"]) == everything["totalSize"], "query_all pages to completion")
        count = sf.query("SELECT COUNT() FROM Lead")
        expect(count["totalSize"] == everything["totalSize"] and count["records"] == [], "COUNT() query")

    def error_replies():
        try:
            client("expired").limits()
            raise AssertionError("expired session accepted")
        except SalesforceExpiredSession:
            pass
        try:
            sf.Nope.describe()
            raise AssertionError("unknown sObject accepted")
        except SalesforceResourceNotFound:
            pass

    def ui_api_stage_values():
        # The reply the CRM kinds read per sales process: the UI API's picklist values of
        # Opportunity.StageName for one record type ("Picklist Values" response body: the
        # controller values map, the default value, eTag, url and the values, each with
        # attributes, label, validFor and value).
        path = f"ui-api/object-info/Opportunity/picklist-values/{record_type}/StageName"
        r = sf.restful(path)
        expect(isinstance(r, dict), "picklist values reply is an object")
        expect(set(r) == {"controllerValues", "defaultValue", "eTag", "url", "values"}, f"picklist values keys: {sorted(r)}")
        expect(isinstance(r["controllerValues"], dict), "controllerValues is a map")
        expect(isinstance(r["eTag"], str) and r["eTag"], "eTag")
        expect(r["url"] == f"/services/data/v{version}/{path}", f"url: {r['url']}")
        expect(r["defaultValue"] is None or set(r["defaultValue"]) == {"attributes", "label", "validFor", "value"}, "defaultValue")
        expect(isinstance(r["values"], list) and r["values"], "values")
        for v in r["values"]:
            expect(set(v) == {"attributes", "label", "validFor", "value"}, f"picklist value keys: {sorted(v)}")
            expect(isinstance(v["value"], str) and isinstance(v["label"], str), "value and label are strings")
            expect(isinstance(v["validFor"], list) and all(isinstance(i, int) for i in v["validFor"]), "validFor is a list of indexes")
        print("stage values: " + json.dumps([v["value"] for v in r["values"]]))
        try:
            sf.restful("ui-api/object-info/Opportunity/picklist-values/012000000000000AAA/StageName")
            raise AssertionError("unknown record type accepted")
        except SalesforceResourceNotFound:
            pass

    check("salesforce limits", limits)
    if record_type:
        check("salesforce ui api stage values", ui_api_stage_values)
    check("salesforce describe", describe)
    check("salesforce query paging", query_paging)
    check("salesforce error replies", error_replies)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hubspot")
    p.add_argument("--hubspot-token")
    p.add_argument("--salesforce")
    p.add_argument("--salesforce-session")
    p.add_argument("--salesforce-version", default="60.0")
    p.add_argument("--salesforce-record-type")
    a = p.parse_args()
    if not a.hubspot and not a.salesforce:
        p.error("nothing to check")
    if a.hubspot:
        hubspot_checks(a.hubspot, a.hubspot_token)
    if a.salesforce:
        salesforce_checks(a.salesforce, a.salesforce_session, a.salesforce_version, a.salesforce_record_type)
    if failures:
        print(f"{len(failures)} fidelity check(s) failed: {', '.join(failures)}")
        sys.exit(1)
    print("all fidelity checks passed")


if __name__ == "__main__":
    main()
