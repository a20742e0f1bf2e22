/**
 * A certificate and key for `hooks.mallory.invalid` (self-signed, valid until 2126) that the tests
 * trust explicitly (caCerts) to run a local TLS endpoint. They protect nothing: `.invalid` never
 * resolves, and no one else trusts this certificate.
 */
export const HOOKS_CERT = `-----BEGIN CERTIFICATE-----
MIIBtjCCAVygAwIBAgIUFgnKLIYhuiYR67P1l34oGyn44pQwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVaG9va3MubWFsbG9yeS5pbnZhbGlkMCAXDTI2MTIwNTIxMzg1
OVoYDzIxMjYxMTExMjEzODU5WjAgMR4wHAYDVQQDDBVob29rcy5tYWxsb3J5Lmlu
dmFsaWQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARGeLCyq5bd3Br8Fs81WDwe
48KQd6oUyLDSuGhtpWYlLuv3PKsZj2927XsBKZhamlgKIc/cMC63n1Pry8ivAgEj
o3IwcDAdBgNVHQ4EFgQUnWJ3qUefc12xN6ojHir7je5Mun0wHwYDVR0jBBgwFoAU
nWJ3qUefc12xN6ojHir7je5Mun0wIAYDVR0RBBkwF4IVaG9va3MubWFsbG9yeS5p
bnZhbGlkMAwGA1UdEwEB/wQCMAAwCgYIKoZIzj0EAwIDSAAwRQIgc/Ks3e8PStcn
OAmZuVB2WkOdqtatIs6c5OEML3b/9ksCIQDT2HZwSYd53fAI8pFkNV16Byh87584
ejh6I5l0/itQIQ==
-----END CERTIFICATE-----
`;

export const HOOKS_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXZHOG2nG3xoqL954
SF8C6KLHFItihJSmY2N6ywkpRN2hRANCAARGeLCyq5bd3Br8Fs81WDwe48KQd6oU
yLDSuGhtpWYlLuv3PKsZj2927XsBKZhamlgKIc/cMC63n1Pry8ivAgEj
-----END PRIVATE KEY-----
`;
