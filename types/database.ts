
export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "public": {
          Tables: {
            "account_invitations": {
                  Row: {
                    "accepted_at": string | null,"accepted_by": string | null,"account_id": string,"created_at": string,"email": string,"expires_at": string,"id": string,"invited_by": string | null,"role": string,"role_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "accepted_at"?: string | null,"accepted_by"?: string | null,"account_id": string,"created_at"?: string,"email": string,"expires_at": string,"id"?: string,"invited_by"?: string | null,"role": string,"role_id"?: string | null
                  }
                  Update: {
                    "accepted_at"?: string | null,"accepted_by"?: string | null,"account_id"?: string,"created_at"?: string,"email"?: string,"expires_at"?: string,"id"?: string,"invited_by"?: string | null,"role"?: string,"role_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "account_invitations_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "account_invitations_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "account_invitations_role_fkey"
      columns: ["role_id","role"]
isOneToOne: false
      referencedRelation: "roles"
      referencedColumns: ["id","key"]
    }
                  ]
                },"account_members": {
                  Row: {
                    "account_id": string,"created_at": string,"role": string,"role_id": string,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"created_at"?: string,"role": string,"role_id": string,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "account_id"?: string,"created_at"?: string,"role"?: string,"role_id"?: string,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "account_members_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "account_members_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "account_members_role_fkey"
      columns: ["role_id","role"]
isOneToOne: false
      referencedRelation: "roles"
      referencedColumns: ["id","key"]
    }
                  ]
                },"accounts": {
                  Row: {
                    "created_at": string,"created_by": string | null,"id": string,"kind": string,"name": string,"primary_owner": string,"slug": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"kind": string,"name": string,"primary_owner": string,"slug"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"kind"?: string,"name"?: string,"primary_owner"?: string,"slug"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"api_keys": {
                  Row: {
                    "account_id": string,"created_at": string,"created_by": string | null,"expires_at": string | null,"id": string,"last_used_at": string | null,"name": string,"prefix": string,"rate_limit_capacity": number | null,"rate_limit_refill_per_second": number | null,"revoked_at": string | null,"revoked_by": string | null,"scopes": (string)[]
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"id"?: string,"last_used_at"?: string | null,"name": string,"prefix": string,"rate_limit_capacity"?: number | null,"rate_limit_refill_per_second"?: number | null,"revoked_at"?: string | null,"revoked_by"?: string | null,"scopes": (string)[]
                  }
                  Update: {
                    "account_id"?: string,"created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"id"?: string,"last_used_at"?: string | null,"name"?: string,"prefix"?: string,"rate_limit_capacity"?: number | null,"rate_limit_refill_per_second"?: number | null,"revoked_at"?: string | null,"revoked_by"?: string | null,"scopes"?: (string)[]
                  }
                  Relationships: [
                    {
      foreignKeyName: "api_keys_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "api_keys_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"audit_log": {
                  Row: {
                    "account_id": string | null,"action": string,"actor_role": string,"actor_user_id": string | null,"after": Json | null,"before": Json | null,"entity": string,"entity_id": string | null,"hash": string | null,"id": number,"ip": string | null,"occurred_at": string,"position": number | null,"prev_hash": string | null,"sealed_at": string | null,"user_agent": string | null,"writer_xid": unknown
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id"?: string | null,"action": string,"actor_role": string,"actor_user_id"?: string | null,"after"?: Json | null,"before"?: Json | null,"entity": string,"entity_id"?: string | null,"hash"?: string | null,"id"?: never,"ip"?: string | null,"occurred_at"?: string,"position"?: number | null,"prev_hash"?: string | null,"sealed_at"?: string | null,"user_agent"?: string | null,"writer_xid"?: unknown
                  }
                  Update: {
                    "account_id"?: string | null,"action"?: string,"actor_role"?: string,"actor_user_id"?: string | null,"after"?: Json | null,"before"?: Json | null,"entity"?: string,"entity_id"?: string | null,"hash"?: string | null,"id"?: never,"ip"?: string | null,"occurred_at"?: string,"position"?: number | null,"prev_hash"?: string | null,"sealed_at"?: string | null,"user_agent"?: string | null,"writer_xid"?: unknown
                  }
                  Relationships: [
                    
                  ]
                },"auto_topup_attempts": {
                  Row: {
                    "account_id": string,"amount": number,"available_before": number | null,"created_at": string,"credit_pack": string,"credits": number,"currency": string,"failure_code": string | null,"failure_message": string | null,"finished_at": string | null,"grant_id": string | null,"id": string,"job_id": number | null,"status": string,"stripe_payment_intent_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"amount": number,"available_before"?: number | null,"created_at": string,"credit_pack": string,"credits": number,"currency": string,"failure_code"?: string | null,"failure_message"?: string | null,"finished_at"?: string | null,"grant_id"?: string | null,"id"?: string,"job_id"?: number | null,"status"?: string,"stripe_payment_intent_id"?: string | null
                  }
                  Update: {
                    "account_id"?: string,"amount"?: number,"available_before"?: number | null,"created_at"?: string,"credit_pack"?: string,"credits"?: number,"currency"?: string,"failure_code"?: string | null,"failure_message"?: string | null,"finished_at"?: string | null,"grant_id"?: string | null,"id"?: string,"job_id"?: number | null,"status"?: string,"stripe_payment_intent_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "auto_topup_attempts_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "auto_topup_attempts_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"auto_topup_settings": {
                  Row: {
                    "account_id": string,"consecutive_failures": number,"created_at": string,"credit_pack": string,"disabled_at": string | null,"disabled_reason": string | null,"enabled": boolean,"monthly_limit": number,"threshold": number,"updated_at": string,"updated_by": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"consecutive_failures"?: number,"created_at"?: string,"credit_pack": string,"disabled_at"?: string | null,"disabled_reason"?: string | null,"enabled"?: boolean,"monthly_limit"?: number,"threshold": number,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Update: {
                    "account_id"?: string,"consecutive_failures"?: number,"created_at"?: string,"credit_pack"?: string,"disabled_at"?: string | null,"disabled_reason"?: string | null,"enabled"?: boolean,"monthly_limit"?: number,"threshold"?: number,"updated_at"?: string,"updated_by"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "auto_topup_settings_account_id_fkey"
      columns: ["account_id"]
isOneToOne: true
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "auto_topup_settings_account_id_fkey"
      columns: ["account_id"]
isOneToOne: true
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "auto_topup_settings_credit_pack_fkey"
      columns: ["credit_pack"]
isOneToOne: false
      referencedRelation: "credit_packs"
      referencedColumns: ["key"]
    }
                  ]
                },"billable_actions": {
                  Row: {
                    "active": boolean,"category": string,"created_at": string,"credits": number,"description": string | null,"key": string,"name": string,"unit_size": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"category"?: string,"created_at"?: string,"credits": number,"description"?: string | null,"key": string,"name": string,"unit_size"?: number,"updated_at"?: string
                  }
                  Update: {
                    "active"?: boolean,"category"?: string,"created_at"?: string,"credits"?: number,"description"?: string | null,"key"?: string,"name"?: string,"unit_size"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"billing_customers": {
                  Row: {
                    "account_id": string,"created_at": string,"email": string | null,"generation": number,"livemode": boolean | null,"status": string,"stripe_customer_id": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"created_at"?: string,"email"?: string | null,"generation"?: number,"livemode"?: boolean | null,"status"?: string,"stripe_customer_id"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "account_id"?: string,"created_at"?: string,"email"?: string | null,"generation"?: number,"livemode"?: boolean | null,"status"?: string,"stripe_customer_id"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"credit_balances": {
                  Row: {
                    "account_id": string,"available": number | null,"balance": number,"consume_tat": string | null,"held": number,"lot_id": string | null,"lot_remaining": number | null,"low_balance_since": string | null,"low_balance_threshold": number | null,"next_expiry_at": string | null,"quota_period_start": string | null,"quota_used": NonNullable<Json>,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"available"?: never,"balance"?: number,"consume_tat"?: string | null,"held"?: number,"lot_id"?: string | null,"lot_remaining"?: number | null,"low_balance_since"?: string | null,"low_balance_threshold"?: number | null,"next_expiry_at"?: string | null,"quota_period_start"?: string | null,"quota_used"?: NonNullable<Json>,"updated_at"?: string
                  }
                  Update: {
                    "account_id"?: string,"available"?: never,"balance"?: number,"consume_tat"?: string | null,"held"?: number,"lot_id"?: string | null,"lot_remaining"?: number | null,"low_balance_since"?: string | null,"low_balance_threshold"?: number | null,"next_expiry_at"?: string | null,"quota_period_start"?: string | null,"quota_used"?: NonNullable<Json>,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "credit_balances_account_id_fkey"
      columns: ["account_id"]
isOneToOne: true
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "credit_balances_account_id_fkey"
      columns: ["account_id"]
isOneToOne: true
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_holds": {
                  Row: {
                    "account_id": string,"action": string,"amount": number,"created_at": string,"credits_charged": number | null,"credits_per_unit": number,"expires_at": string,"id": string,"idempotency_key": string | null,"quantity": number,"quota_keys": (string)[],"quota_period_start": string | null,"seq": number,"settled_at": string | null,"status": string,"unit_size": number,"usage_event_id": string | null,"user_id": string | null,"usage_events": {
              "account_id": string,
"action": string | null,
"api_key_id": string | null,
"created_at": string,
"credits_charged": number | null,
"hold_id": string | null,
"id": string | null,
"idempotency_key": string | null,
"metadata": NonNullable<Json>,
"quantity": number | null,
"user_id": string | null,
"writer_xid": unknown
            } | null
                  }
                  ComputedFields: "usage_events"
                  Insert: {
                    "account_id": string,"action": string,"amount": number,"created_at"?: string,"credits_charged"?: number | null,"credits_per_unit": number,"expires_at": string,"id"?: string,"idempotency_key"?: string | null,"quantity": number,"quota_keys"?: (string)[],"quota_period_start"?: string | null,"seq"?: never,"settled_at"?: string | null,"status"?: string,"unit_size": number,"usage_event_id"?: string | null,"user_id"?: string | null
                  }
                  Update: {
                    "account_id"?: string,"action"?: string,"amount"?: number,"created_at"?: string,"credits_charged"?: number | null,"credits_per_unit"?: number,"expires_at"?: string,"id"?: string,"idempotency_key"?: string | null,"quantity"?: number,"quota_keys"?: (string)[],"quota_period_start"?: string | null,"seq"?: never,"settled_at"?: string | null,"status"?: string,"unit_size"?: number,"usage_event_id"?: string | null,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "credit_holds_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "credit_holds_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_packs": {
                  Row: {
                    "active": boolean,"created_at": string,"credits": number,"currency": string,"key": string,"name": string,"price_cents": number,"stripe_price_id": string | null,"stripe_product_id": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"created_at"?: string,"credits": number,"currency"?: string,"key": string,"name": string,"price_cents": number,"stripe_price_id"?: string | null,"stripe_product_id"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "active"?: boolean,"created_at"?: string,"credits"?: number,"currency"?: string,"key"?: string,"name"?: string,"price_cents"?: number,"stripe_price_id"?: string | null,"stripe_product_id"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"notifications": {
                  Row: {
                    "body": string | null,"created_at": string,"data": NonNullable<Json>,"id": string,"read_at": string | null,"title": string,"type": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "body"?: string | null,"created_at"?: string,"data"?: NonNullable<Json>,"id"?: string,"read_at"?: string | null,"title": string,"type": string,"user_id": string
                  }
                  Update: {
                    "body"?: string | null,"created_at"?: string,"data"?: NonNullable<Json>,"id"?: string,"read_at"?: string | null,"title"?: string,"type"?: string,"user_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"payments": {
                  Row: {
                    "account_id": string,"amount": number,"amount_refunded": number,"billing_reason": string | null,"created_at": string,"credit_adjustments": number,"credits_clawed_back": number,"credits_due": number,"credits_granted": number,"credits_held_by_dispute": number,"currency": string,"dispute_status": string | null,"expected_amount": number | null,"flagged_reason": string | null,"grant_id": string | null,"id": string,"invoice_pdf": string | null,"invoice_url": string | null,"item_key": string | null,"kind": string,"livemode": boolean | null,"paid_at": string | null,"period_end": string | null,"period_start": string | null,"quantity": number,"receipt_url": string | null,"settlement": string,"status": string,"stripe_charge_id": string | null,"stripe_checkout_session_id": string | null,"stripe_customer_id": string | null,"stripe_dispute_id": string | null,"stripe_invoice_id": string | null,"stripe_payment_intent_id": string | null,"stripe_subscription_id": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"amount"?: number,"amount_refunded"?: number,"billing_reason"?: string | null,"created_at"?: string,"credit_adjustments"?: number,"credits_clawed_back"?: number,"credits_due"?: number,"credits_granted"?: number,"credits_held_by_dispute"?: number,"currency"?: string,"dispute_status"?: string | null,"expected_amount"?: number | null,"flagged_reason"?: string | null,"grant_id"?: string | null,"id"?: string,"invoice_pdf"?: string | null,"invoice_url"?: string | null,"item_key"?: string | null,"kind": string,"livemode"?: boolean | null,"paid_at"?: string | null,"period_end"?: string | null,"period_start"?: string | null,"quantity"?: number,"receipt_url"?: string | null,"settlement"?: string,"status"?: string,"stripe_charge_id"?: string | null,"stripe_checkout_session_id"?: string | null,"stripe_customer_id"?: string | null,"stripe_dispute_id"?: string | null,"stripe_invoice_id"?: string | null,"stripe_payment_intent_id"?: string | null,"stripe_subscription_id"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "account_id"?: string,"amount"?: number,"amount_refunded"?: number,"billing_reason"?: string | null,"created_at"?: string,"credit_adjustments"?: number,"credits_clawed_back"?: number,"credits_due"?: number,"credits_granted"?: number,"credits_held_by_dispute"?: number,"currency"?: string,"dispute_status"?: string | null,"expected_amount"?: number | null,"flagged_reason"?: string | null,"grant_id"?: string | null,"id"?: string,"invoice_pdf"?: string | null,"invoice_url"?: string | null,"item_key"?: string | null,"kind"?: string,"livemode"?: boolean | null,"paid_at"?: string | null,"period_end"?: string | null,"period_start"?: string | null,"quantity"?: number,"receipt_url"?: string | null,"settlement"?: string,"status"?: string,"stripe_charge_id"?: string | null,"stripe_checkout_session_id"?: string | null,"stripe_customer_id"?: string | null,"stripe_dispute_id"?: string | null,"stripe_invoice_id"?: string | null,"stripe_payment_intent_id"?: string | null,"stripe_subscription_id"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"permissions": {
                  Row: {
                    "description": string,"key": string
                  }
                  ComputedFields: never
                  Insert: {
                    "description": string,"key": string
                  }
                  Update: {
                    "description"?: string,"key"?: string
                  }
                  Relationships: [
                    
                  ]
                },"plans": {
                  Row: {
                    "active": boolean,"billing_interval": string,"created_at": string,"currency": string,"features": NonNullable<Json>,"included_credits": number,"key": string,"limits": NonNullable<Json>,"max_members": number | null,"name": string,"price_cents": number,"rollover": Json | null,"seat_pricing": Json | null,"stripe_price_id": string | null,"stripe_product_id": string | null,"tier": number,"trial_days": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"billing_interval"?: string,"created_at"?: string,"currency"?: string,"features"?: NonNullable<Json>,"included_credits"?: number,"key": string,"limits"?: NonNullable<Json>,"max_members"?: number | null,"name": string,"price_cents"?: number,"rollover"?: Json | null,"seat_pricing"?: Json | null,"stripe_price_id"?: string | null,"stripe_product_id"?: string | null,"tier"?: number,"trial_days"?: number,"updated_at"?: string
                  }
                  Update: {
                    "active"?: boolean,"billing_interval"?: string,"created_at"?: string,"currency"?: string,"features"?: NonNullable<Json>,"included_credits"?: number,"key"?: string,"limits"?: NonNullable<Json>,"max_members"?: number | null,"name"?: string,"price_cents"?: number,"rollover"?: Json | null,"seat_pricing"?: Json | null,"stripe_price_id"?: string | null,"stripe_product_id"?: string | null,"tier"?: number,"trial_days"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"profiles": {
                  Row: {
                    "avatar_path": string | null,"created_at": string,"email": string | null,"full_name": string | null,"id": string,"preferences": NonNullable<Json>,"referral_code": string,"referred_by": string | null,"updated_at": string,"username": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "avatar_path"?: string | null,"created_at"?: string,"email"?: string | null,"full_name"?: string | null,"id": string,"preferences"?: NonNullable<Json>,"referral_code": string,"referred_by"?: string | null,"updated_at"?: string,"username"?: string | null
                  }
                  Update: {
                    "avatar_path"?: string | null,"created_at"?: string,"email"?: string | null,"full_name"?: string | null,"id"?: string,"preferences"?: NonNullable<Json>,"referral_code"?: string,"referred_by"?: string | null,"updated_at"?: string,"username"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"referrals": {
                  Row: {
                    "code": string,"created_at": string,"id": string,"referee_id": string,"referee_reward": number,"referrer_id": string,"referrer_reward": number,"rewarded_at": string | null,"status": string
                  }
                  ComputedFields: never
                  Insert: {
                    "code": string,"created_at"?: string,"id"?: string,"referee_id": string,"referee_reward"?: number,"referrer_id": string,"referrer_reward"?: number,"rewarded_at"?: string | null,"status": string
                  }
                  Update: {
                    "code"?: string,"created_at"?: string,"id"?: string,"referee_id"?: string,"referee_reward"?: number,"referrer_id"?: string,"referrer_reward"?: number,"rewarded_at"?: string | null,"status"?: string
                  }
                  Relationships: [
                    
                  ]
                },"role_permissions": {
                  Row: {
                    "permission": string,"role": string,"role_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "permission": string,"role": string,"role_id": string
                  }
                  Update: {
                    "permission"?: string,"role"?: string,"role_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "role_permissions_permission_fkey"
      columns: ["permission"]
isOneToOne: false
      referencedRelation: "permissions"
      referencedColumns: ["key"]
    },{
      foreignKeyName: "role_permissions_role_fkey"
      columns: ["role_id","role"]
isOneToOne: false
      referencedRelation: "roles"
      referencedColumns: ["id","key"]
    }
                  ]
                },"roles": {
                  Row: {
                    "account_id": string | null,"created_at": string,"description": string | null,"id": string,"key": string,"name": string,"rank": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id"?: string | null,"created_at"?: string,"description"?: string | null,"id"?: string,"key": string,"name": string,"rank": number,"updated_at"?: string
                  }
                  Update: {
                    "account_id"?: string | null,"created_at"?: string,"description"?: string | null,"id"?: string,"key"?: string,"name"?: string,"rank"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "roles_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "roles_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"subscription_history": {
                  Row: {
                    "account_id": string,"cancel_at_period_end": boolean,"id": number,"new_plan_key": string | null,"new_status": string,"occurred_at": string,"old_plan_key": string | null,"old_status": string | null,"reason": string,"recorded_at": string,"stripe_event_id": string | null,"stripe_event_type": string | null,"stripe_subscription_id": string,"subscription_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"cancel_at_period_end"?: boolean,"id"?: never,"new_plan_key"?: string | null,"new_status": string,"occurred_at": string,"old_plan_key"?: string | null,"old_status"?: string | null,"reason": string,"recorded_at"?: string,"stripe_event_id"?: string | null,"stripe_event_type"?: string | null,"stripe_subscription_id": string,"subscription_id": string
                  }
                  Update: {
                    "account_id"?: string,"cancel_at_period_end"?: boolean,"id"?: never,"new_plan_key"?: string | null,"new_status"?: string,"occurred_at"?: string,"old_plan_key"?: string | null,"old_status"?: string | null,"reason"?: string,"recorded_at"?: string,"stripe_event_id"?: string | null,"stripe_event_type"?: string | null,"stripe_subscription_id"?: string,"subscription_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "subscription_history_subscription_id_fkey"
      columns: ["subscription_id"]
isOneToOne: false
      referencedRelation: "subscriptions"
      referencedColumns: ["id"]
    }
                  ]
                },"subscriptions": {
                  Row: {
                    "account_id": string,"cancel_at": string | null,"cancel_at_period_end": boolean,"canceled_at": string | null,"created_at": string,"current_period_end": string | null,"current_period_start": string | null,"ended_at": string | null,"id": string,"last_event_created": string,"last_event_id": string,"last_event_type": string,"livemode": boolean | null,"metadata": NonNullable<Json>,"plan_key": string | null,"quantity": number,"status": string,"stripe_customer_id": string | null,"stripe_price_id": string | null,"stripe_subscription_id": string,"trial_end": string | null,"trial_start": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"cancel_at"?: string | null,"cancel_at_period_end"?: boolean,"canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string | null,"current_period_start"?: string | null,"ended_at"?: string | null,"id"?: string,"last_event_created": string,"last_event_id": string,"last_event_type": string,"livemode"?: boolean | null,"metadata"?: NonNullable<Json>,"plan_key"?: string | null,"quantity"?: number,"status": string,"stripe_customer_id"?: string | null,"stripe_price_id"?: string | null,"stripe_subscription_id": string,"trial_end"?: string | null,"trial_start"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "account_id"?: string,"cancel_at"?: string | null,"cancel_at_period_end"?: boolean,"canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string | null,"current_period_start"?: string | null,"ended_at"?: string | null,"id"?: string,"last_event_created"?: string,"last_event_id"?: string,"last_event_type"?: string,"livemode"?: boolean | null,"metadata"?: NonNullable<Json>,"plan_key"?: string | null,"quantity"?: number,"status"?: string,"stripe_customer_id"?: string | null,"stripe_price_id"?: string | null,"stripe_subscription_id"?: string,"trial_end"?: string | null,"trial_start"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "subscriptions_plan_key_fkey"
      columns: ["plan_key"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["plan_key"]
    },{
      foreignKeyName: "subscriptions_plan_key_fkey"
      columns: ["plan_key"]
isOneToOne: false
      referencedRelation: "plans"
      referencedColumns: ["key"]
    }
                  ]
                },"usage_overages": {
                  Row: {
                    "account_id": string,"action": string,"created_at": string,"overage_units": number,"period_start": string,"reported_at": string | null,"stripe_meter_event_name": string,"usage_event_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"action": string,"created_at"?: string,"overage_units": number,"period_start": string,"reported_at"?: string | null,"stripe_meter_event_name": string,"usage_event_id": string
                  }
                  Update: {
                    "account_id"?: string,"action"?: string,"created_at"?: string,"overage_units"?: number,"period_start"?: string,"reported_at"?: string | null,"stripe_meter_event_name"?: string,"usage_event_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"user_roles": {
                  Row: {
                    "created_at": string,"role": string,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"role"?: string,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"role"?: string,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"waitlist": {
                  Row: {
                    "created_at": string,"email": string,"id": string,"referral_code": string | null,"source": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"email": string,"id"?: string,"referral_code"?: string | null,"source"?: string | null
                  }
                  Update: {
                    "created_at"?: string,"email"?: string,"id"?: string,"referral_code"?: string | null,"source"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"webhook_deliveries": {
                  Row: {
                    "account_id": string,"attempt": number,"created_at": string,"delivered_at": string | null,"duration_ms": number | null,"endpoint_id": string,"event_id": string,"id": string,"last_error": string | null,"next_attempt_at": string | null,"payload": NonNullable<Json>,"response_body": string | null,"response_status": number | null,"status": string,"type": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"attempt"?: number,"created_at"?: string,"delivered_at"?: string | null,"duration_ms"?: number | null,"endpoint_id": string,"event_id": string,"id"?: string,"last_error"?: string | null,"next_attempt_at"?: string | null,"payload": NonNullable<Json>,"response_body"?: string | null,"response_status"?: number | null,"status"?: string,"type": string
                  }
                  Update: {
                    "account_id"?: string,"attempt"?: number,"created_at"?: string,"delivered_at"?: string | null,"duration_ms"?: number | null,"endpoint_id"?: string,"event_id"?: string,"id"?: string,"last_error"?: string | null,"next_attempt_at"?: string | null,"payload"?: NonNullable<Json>,"response_body"?: string | null,"response_status"?: number | null,"status"?: string,"type"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "webhook_deliveries_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "webhook_deliveries_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "webhook_deliveries_endpoint_id_fkey"
      columns: ["endpoint_id"]
isOneToOne: false
      referencedRelation: "webhook_endpoints"
      referencedColumns: ["id"]
    }
                  ]
                },"webhook_endpoints": {
                  Row: {
                    "account_id": string,"active": boolean,"created_at": string,"created_by": string | null,"description": string | null,"disabled_reason": string | null,"event_types": (string)[],"id": string,"updated_at": string,"url": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_id": string,"active"?: boolean,"created_at"?: string,"created_by"?: string | null,"description"?: string | null,"disabled_reason"?: string | null,"event_types": (string)[],"id"?: string,"updated_at"?: string,"url": string
                  }
                  Update: {
                    "account_id"?: string,"active"?: boolean,"created_at"?: string,"created_by"?: string | null,"description"?: string | null,"disabled_reason"?: string | null,"event_types"?: (string)[],"id"?: string,"updated_at"?: string,"url"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "webhook_endpoints_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "webhook_endpoints_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"webhook_events": {
                  Row: {
                    "api_version": string | null,"attempts": number,"error": string | null,"event_created": string | null,"event_id": string,"id": number,"livemode": boolean | null,"payload": NonNullable<Json>,"processed_at": string | null,"provider": string,"received_at": string,"status": string,"type": string
                  }
                  ComputedFields: never
                  Insert: {
                    "api_version"?: string | null,"attempts"?: number,"error"?: string | null,"event_created"?: string | null,"event_id": string,"id"?: never,"livemode"?: boolean | null,"payload": NonNullable<Json>,"processed_at"?: string | null,"provider"?: string,"received_at"?: string,"status": string,"type": string
                  }
                  Update: {
                    "api_version"?: string | null,"attempts"?: number,"error"?: string | null,"event_created"?: string | null,"event_id"?: string,"id"?: never,"livemode"?: boolean | null,"payload"?: NonNullable<Json>,"processed_at"?: string | null,"provider"?: string,"received_at"?: string,"status"?: string,"type"?: string
                  }
                  Relationships: [
                    
                  ]
                }
          }
          Views: {
            "account_entitlements": {
                  Row: {
                    "account_id": string,"cancel_at_period_end": boolean | null,"current_period_end": string | null,"current_period_start": string | null,"enabled_features": (string)[] | null,"features": NonNullable<Json>,"included_credits": number,"limits": NonNullable<Json>,"max_members": number | null,"plan_key": string,"plan_name": string,"quotas": Json | null,"status": string | null,"stripe_subscription_id": string | null,"tier": number,"trial_end": string | null
                  }
                  ComputedFields: never
                  Relationships: [
                    
                  ]
                },"credit_grants": {
                  Row: {
                    "account_id": string,"amount": number,"created_at": string,"expires_at": string | null,"id": string,"idempotency_key": string | null,"metadata": NonNullable<Json>,"paid": boolean | null,"payment_id": string | null,"remaining": number | null,"seq": number,"source": string
                  }
                  ComputedFields: never
                  Insert: {
                           "account_id"?: string | null,"amount"?: number | null,"created_at"?: string | null,"expires_at"?: string | null,"id"?: string | null,"idempotency_key"?: string | null,"metadata"?: Json | null,"paid"?: boolean | null,"payment_id"?: string | null,"remaining"?: number | null,"seq"?: number | null,"source"?: string | null
                         }
                        Update: {
                           "account_id"?: string | null,"amount"?: number | null,"created_at"?: string | null,"expires_at"?: string | null,"id"?: string | null,"idempotency_key"?: string | null,"metadata"?: Json | null,"paid"?: boolean | null,"payment_id"?: string | null,"remaining"?: number | null,"seq"?: number | null,"source"?: string | null
                         }
                        Relationships: [
                    {
      foreignKeyName: "credit_grants_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "account_entitlements"
      referencedColumns: ["account_id"]
    },{
      foreignKeyName: "credit_grants_account_id_fkey"
      columns: ["account_id"]
isOneToOne: false
      referencedRelation: "accounts"
      referencedColumns: ["id"]
    }
                  ]
                },"credit_ledger": {
                  Row: {
                    "account_id": string,"actor_role": string,"actor_user_id": string | null,"available_after": number | null,"balance_after": number | null,"created_at": string,"delta": number,"grant_id": string | null,"hold_id": string | null,"id": number,"idempotency_key": string | null,"metadata": NonNullable<Json>,"payment_id": string | null,"reason": string,"usage_event_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                           "account_id"?: string | null,"actor_role"?: string | null,"actor_user_id"?: string | null,"available_after"?: number | null,"balance_after"?: number | null,"created_at"?: string | null,"delta"?: number | null,"grant_id"?: string | null,"hold_id"?: string | null,"id"?: number | null,"idempotency_key"?: string | null,"metadata"?: Json | null,"payment_id"?: string | null,"reason"?: string | null,"usage_event_id"?: string | null
                         }
                        Update: {
                           "account_id"?: string | null,"actor_role"?: string | null,"actor_user_id"?: string | null,"available_after"?: number | null,"balance_after"?: number | null,"created_at"?: string | null,"delta"?: number | null,"grant_id"?: string | null,"hold_id"?: string | null,"id"?: number | null,"idempotency_key"?: string | null,"metadata"?: Json | null,"payment_id"?: string | null,"reason"?: string | null,"usage_event_id"?: string | null
                         }
                        Relationships: [
                    
                  ]
                },"usage_events": {
                  Row: {
                    "account_id": string,"action": string | null,"api_key_id": string | null,"created_at": string,"credits_charged": number | null,"hold_id": string | null,"id": string | null,"idempotency_key": string | null,"metadata": NonNullable<Json>,"quantity": number | null,"user_id": string | null,"writer_xid": unknown,"credit_holds": {
              "account_id": string,
"action": string,
"amount": number,
"created_at": string,
"credits_charged": number | null,
"credits_per_unit": number,
"expires_at": string,
"id": string,
"idempotency_key": string | null,
"quantity": number,
"quota_keys": (string)[],
"quota_period_start": string | null,
"seq": number,
"settled_at": string | null,
"status": string,
"unit_size": number,
"usage_event_id": string | null,
"user_id": string | null
            } | null
                  }
                  ComputedFields: "credit_holds"
                  Insert: {
                           "account_id"?: string | null,"action"?: string | null,"api_key_id"?: string | null,"created_at"?: string | null,"credits_charged"?: number | null,"hold_id"?: string | null,"id"?: string | null,"idempotency_key"?: string | null,"metadata"?: Json | null,"quantity"?: number | null,"user_id"?: string | null,"writer_xid"?: unknown
                         }
                        Update: {
                           "account_id"?: string | null,"action"?: string | null,"api_key_id"?: string | null,"created_at"?: string | null,"credits_charged"?: number | null,"hold_id"?: string | null,"id"?: string | null,"idempotency_key"?: string | null,"metadata"?: Json | null,"quantity"?: number | null,"user_id"?: string | null,"writer_xid"?: unknown
                         }
                        Relationships: [
                    
                  ]
                }
          }
          Functions: {
            "accept_invitation":
{ Args: { "token": string }; Returns: string
                           },
"admin_adjust_credits":
{ Args: { "account_id": string,"delta": number,"idempotency_key"?: string,"reason": string }; Returns: Json
                           },
"begin_checkout":
{ Args: { "account_id": string,"credit_pack"?: string,"plan"?: string,"quantity"?: number }; Returns: Json
                           },
"billing_portal_customer":
{ Args: { "account_id": string }; Returns: string
                           },
"capture_credits":
{ Args: { "hold_id": string,"quantity"?: number }; Returns: Json
                           },
"consume_credits":
{ Args: { "account_id": string,"action": string,"idempotency_key"?: string,"metadata"?: Json,"quantity"?: number }; Returns: Json
                           },
"create_api_key":
{ Args: { "account_id": string,"expires_at"?: string,"name": string,"rate_limit_capacity"?: number,"rate_limit_refill_per_second"?: number,"scopes"?: (string)[] }; Returns: Json
                           },
"create_role":
{ Args: { "account_id": string,"description"?: string,"key": string,"name": string,"permissions": (string)[] }; Returns: string
                           },
"create_team_account":
{ Args: { "name": string,"slug": string }; Returns: {
              "created_at": string,
"created_by": string | null,
"id": string,
"kind": string,
"name": string,
"primary_owner": string,
"slug": string | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "accounts"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_webhook_endpoint":
{ Args: { "account_id": string,"description"?: string,"event_types": (string)[],"url": string }; Returns: Json
                           },
"credit_holds":
{ Args: { "event": Omit<Database["public"]['Views']["usage_events"]['Row'], Database["public"]['Views']["usage_events"]['ComputedFields']> }; Returns: {
              "account_id": string,
"action": string,
"amount": number,
"created_at": string,
"credits_charged": number | null,
"credits_per_unit": number,
"expires_at": string,
"id": string,
"idempotency_key": string | null,
"quantity": number,
"quota_keys": (string)[],
"quota_period_start": string | null,
"seq": number,
"settled_at": string | null,
"status": string,
"unit_size": number,
"usage_event_id": string | null,
"user_id": string | null
            }[]
                          SetofOptions: {
        from: "usage_events"
        to: "credit_holds"
        isOneToOne: false
        isSetofReturn: true
      } },
"delete_account":
{ Args: { "account_id": string }; Returns: undefined
                           },
"delete_role":
{ Args: { "replacement"?: string,"role_id": string }; Returns: number
                           },
"delete_webhook_endpoint":
{ Args: { "id": string }; Returns: undefined
                           },
"has_feature":
{ Args: { "account_id": string,"feature": string }; Returns: boolean
                           },
"has_permission":
{ Args: { "account_id": string,"permission": string }; Returns: boolean
                           },
"invite_member":
{ Args: { "account_id": string,"email": string,"role"?: string }; Returns: Json
                           },
"is_staff_admin":
{ Args: Record<PropertyKey, never>; Returns: boolean
                           },
"join_waitlist":
{ Args: { "email": string,"referral_code"?: string,"source"?: string }; Returns: Json
                           },
"leave_account":
{ Args: { "account_id": string }; Returns: undefined
                           },
"mark_notifications_read":
{ Args: { "ids"?: (string)[] }; Returns: number
                           },
"redeem_referral_code":
{ Args: { "code": string }; Returns: Json
                           },
"redeliver_webhook":
{ Args: { "delivery_id": string }; Returns: string
                           },
"release_credits":
{ Args: { "hold_id": string }; Returns: Json
                           },
"remove_member":
{ Args: { "account_id": string,"user_id": string }; Returns: undefined
                           },
"reserve_credits":
{ Args: { "account_id": string,"action": string,"idempotency_key"?: string,"quantity"?: number,"ttl_seconds"?: number }; Returns: Json
                           },
"revenue_summary":
{ Args: { "currency"?: string,"since": string,"until": string }; Returns: {
              "credits_adjusted": number,"credits_clawed_back": number,"credits_consumed": number,"credits_expired": number,"credits_granted": number,"day": string,"live_subscriptions": number,"mrr_cents": number,"pack_revenue_cents": number,"packs_sold": number
            }[]
                           },
"revoke_api_key":
{ Args: { "id": string }; Returns: undefined
                           },
"revoke_invitation":
{ Args: { "invitation_id": string }; Returns: undefined
                           },
"rotate_webhook_secret":
{ Args: { "id": string }; Returns: Json
                           },
"set_api_key_rate_limit":
{ Args: { "capacity": number,"id": string,"refill_per_second": number }; Returns: undefined
                           },
"set_auto_topup":
{ Args: { "account_id": string,"credit_pack": string,"enabled": boolean,"monthly_limit"?: number,"threshold": number }; Returns: {
              "account_id": string,
"consecutive_failures": number,
"created_at": string,
"credit_pack": string,
"disabled_at": string | null,
"disabled_reason": string | null,
"enabled": boolean,
"monthly_limit": number,
"threshold": number,
"updated_at": string,
"updated_by": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "auto_topup_settings"
        isOneToOne: true
        isSetofReturn: false
      } },
"set_member_role":
{ Args: { "account_id": string,"role": string,"user_id": string }; Returns: undefined
                           },
"storage_object_bucket":
{ Args: { "object_id": string }; Returns: string
                           },
"storage_object_owner":
{ Args: { "name": string }; Returns: string
                           },
"transfer_ownership":
{ Args: { "account_id": string,"user_id": string }; Returns: undefined
                           },
"update_account":
{ Args: { "account_id": string,"name"?: string,"slug"?: string }; Returns: {
              "created_at": string,
"created_by": string | null,
"id": string,
"kind": string,
"name": string,
"primary_owner": string,
"slug": string | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "accounts"
        isOneToOne: true
        isSetofReturn: false
      } },
"update_role":
{ Args: { "description"?: string,"name"?: string,"permissions"?: (string)[],"role_id": string }; Returns: undefined
                           },
"update_webhook_endpoint":
{ Args: { "active"?: boolean,"description"?: string,"event_types"?: (string)[],"id": string,"url"?: string }; Returns: {
              "account_id": string,
"active": boolean,
"created_at": string,
"created_by": string | null,
"description": string | null,
"disabled_reason": string | null,
"event_types": (string)[],
"id": string,
"updated_at": string,
"url": string
            }
                          SetofOptions: {
        from: "*"
        to: "webhook_endpoints"
        isOneToOne: true
        isSetofReturn: false
      } },
"usage_events":
{ Args: { "hold": Omit<Database["public"]['Tables']["credit_holds"]['Row'], Database["public"]['Tables']["credit_holds"]['ComputedFields']> }; Returns: {
              "account_id": string,
"action": string | null,
"api_key_id": string | null,
"created_at": string,
"credits_charged": number | null,
"hold_id": string | null,
"id": string | null,
"idempotency_key": string | null,
"metadata": NonNullable<Json>,
"quantity": number | null,
"user_id": string | null,
"writer_xid": unknown
            }
                          SetofOptions: {
        from: "credit_holds"
        to: "usage_events"
        isOneToOne: true
        isSetofReturn: true
      } },
"usage_summary":
{ Args: { "account_id": string,"bucket"?: string,"group_by"?: string,"since": string,"until": string }; Returns: {
              "bucket_start": string,"credits": number,"events": number,"key": string,"quantity": number
            }[]
                           },
"user_account_ids":
{ Args: { "permission"?: string }; Returns: string[]
                           }
          }
          Enums: {
            [_ in never]: never
          }
          CompositeTypes: {
            [_ in never]: never
          }
        }
}

type DatabaseWithoutInternals = Omit<Database, '__InternalSupabase'>

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
  ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R
    }
    ? R
    : never
  : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I
    }
    ? I
    : never
  : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U
    }
    ? U
    : never
  : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
  ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
  : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
  ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
  : never

export const Constants = {
  "public": {
          Enums: {
            
          }
        }
} as const
