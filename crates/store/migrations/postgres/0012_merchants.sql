-- Merchant acquiring (SPEC §5): merchants, service providers and their sub-merchants; the
-- public keys merchants sign their API requests with; the request nonces already seen.
-- A service provider is a merchant row of kind `service_provider`; a sub-merchant names its
-- provider, and its money settles to itself, never to the provider. Rows are never deleted, so
-- an id always names one merchant.
CREATE TABLE merchants (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT NOT NULL,
    -- `merchant` or `service_provider`.
    kind TEXT NOT NULL CHECK (kind IN ('merchant', 'service_provider')),
    service_provider_id BIGINT REFERENCES merchants (id),
    -- The discount rate in basis points: 60 is 0.6 %.
    discount_rate_bps BIGINT NOT NULL CHECK (discount_rate_bps BETWEEN 0 AND 10000),
    notify_url TEXT,
    created_ms BIGINT NOT NULL,
    CHECK (service_provider_id IS NULL OR kind = 'merchant')
);
CREATE INDEX merchants_by_provider ON merchants (service_provider_id)
    WHERE service_provider_id IS NOT NULL;
-- Public keys only (SPKI PEM): the private half never leaves the merchant. A serial names one
-- key of its merchant forever, revoked or not; several may be active at once (rotation).
CREATE TABLE merchant_keys (
    merchant_id BIGINT NOT NULL REFERENCES merchants (id),
    serial TEXT NOT NULL,
    -- `RSA-SHA256` or `Ed25519`.
    algorithm TEXT NOT NULL CHECK (algorithm IN ('RSA-SHA256', 'Ed25519')),
    public_key_pem TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    PRIMARY KEY (merchant_id, serial)
);
-- Each signed request's nonce, once accepted. A request's timestamp may be 5 minutes off, so a
-- nonce must be remembered for 10 minutes; older ones are purged.
CREATE TABLE merchant_nonces (
    merchant_id BIGINT NOT NULL,
    nonce TEXT NOT NULL,
    seen_ms BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, nonce)
);
CREATE INDEX merchant_nonces_by_age ON merchant_nonces (seen_ms);
