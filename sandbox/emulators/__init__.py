"""Faithful local emulators of the Salesforce and Personalization APIs.

They never import the plugins; the plugins never import them. Only URLs and a CA bundle
tell the plugins they are talking to a sandbox.
"""
