"""Export a flow as its JSON document and import one, as a new flow or a new version.

(Handing a flow to another owner is sharing's: ``flows/sharing/service.py``.)"""
