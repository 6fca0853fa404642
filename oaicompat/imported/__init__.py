"""Third-party evidence: HTTP recordings that open-source projects made against hosted vendors.

    formats.py   readers: vcrpy YAML, Ruby VCR YAML, .yaml.gz, Go httprr traces (guarded against bombs), and
                 body-only files (raw JSON / SSE bodies, one-chunk-per-line files)
    profiles.py  what each source project's recorder changes (fixtures/imported/recorders.yaml, validated)
    vendors.py   request host → provider name, and the path relative to the vendor's base URL
    store.py     fixtures/imported/<vendor>/<source>/: our YAML, PROVENANCE.yaml, the source's licence
    evidence.py  every registered check over the imported exchanges, where applicable → results records
    cli.py       `oaicompat import`, `oaicompat evidence`, and validate_evidence for `validate --evidence`
    summary.py   exchanges per vendor and how many were judged (`oaicompat evidence --table`)
"""
