"""Third-party evidence: HTTP recordings that open-source projects made against hosted vendors.

    formats.py   readers: vcrpy YAML, Ruby VCR YAML, .yaml.gz, Go httprr traces (guarded against bombs)
    vendors.py   request host → provider name, and the path relative to the vendor's base URL
    store.py     fixtures/imported/<vendor>/<source>/: our YAML, PROVENANCE.yaml, the source's licence
    evidence.py  every registered check over the imported exchanges, where applicable → results records
    cli.py       `oaicompat import`, `oaicompat evidence`, and validate_evidence for `validate --evidence`
"""
